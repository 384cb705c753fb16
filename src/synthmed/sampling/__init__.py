"""synthmed.sampling"""
