"""An on-premise call center on Asterisk: AMI bridge, FastAGI IVR, dialer, wallboard, CLI."""

__version__ = "0.1.0"
