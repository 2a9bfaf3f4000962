"""Jobs in Qt: worker threads that turn the core's progress callbacks into signals."""
