"""Pure stages over records, no Kafka: the join, the monitors and their detectors' wiring, alerting, event-time ordering."""
