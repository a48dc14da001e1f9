"""The Faust app and everything that touches Faust or Kafka directly, one module per concern."""
