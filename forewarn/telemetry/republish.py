"""Publishing one message to the configured broker: releasing a quarantined input.

A released message goes back through the broker, so it meets the same gate, store and
monitors as any other (and is quarantined again if it is still bad); nothing in the web
process writes readings by itself.
"""

from __future__ import annotations

from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from forewarn.config.schema import BrokerSettings

TIMEOUT = 10.0


def publisher(broker: BrokerSettings, password: str | None) -> Callable[[str, bytes], None]:
    """A function publishing ``(topic, payload)`` at QoS 1; raises OSError on failure."""

    def publish(topic: str, payload: bytes) -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if broker.username:
            client.username_pw_set(broker.username, password)
        try:
            client.connect(broker.host, broker.port, keepalive=broker.keepalive)
            client.loop_start()
            info = client.publish(topic, payload, qos=1)
            info.wait_for_publish(timeout=TIMEOUT)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS or not info.is_published():
                raise OSError(f"publish to {topic} was not acknowledged ({info.rc})")
        except (ValueError, RuntimeError) as problem:
            raise OSError(str(problem)) from problem
        finally:
            client.disconnect()
            client.loop_stop()

    return publish
