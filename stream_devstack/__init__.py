"""stream_devstack."""
