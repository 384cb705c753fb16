"""synthmed.models"""
