"""Operations: the embedded broker, Prometheus metrics, GPU metrics, progress display."""
