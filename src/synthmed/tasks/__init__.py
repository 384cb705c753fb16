"""synthmed.tasks"""
