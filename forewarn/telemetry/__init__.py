"""Telemetry ingest: MQTT messages in, validated readings stored, monitors told."""
