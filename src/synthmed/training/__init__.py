"""synthmed.training"""
