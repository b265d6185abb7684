"""The AMI bridge's shell: connections, the call-log writer, the spool, MQTT, wiring."""
