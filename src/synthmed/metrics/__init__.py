"""synthmed.metrics"""
