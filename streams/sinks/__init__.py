"""Where alerts go besides their topic: a bounded queue per sink, off the monitors' path."""
