"""Releasing a quarantined message publishes it again to the real broker."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from forewarn.config.schema import BrokerSettings
from forewarn.telemetry.republish import publisher
from tests.services import Mosquitto, free_port


def test_it_publishes_the_payload_to_its_topic_at_qos_1(mosquitto: Mosquitto) -> None:
    received: list[tuple[str, bytes]] = []
    arrived = threading.Event()
    subscribed = threading.Event()
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    listener.on_subscribe = lambda *args: subscribed.set()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        received.append((message.topic, message.payload))
        arrived.set()

    listener.on_message = on_message
    listener.connect(mosquitto.host, mosquitto.port)
    listener.loop_start()
    try:
        listener.subscribe("devices/+/telemetry", qos=1)
        assert subscribed.wait(10)

        publish = publisher(BrokerSettings(host=mosquitto.host, port=mosquitto.port), None)
        publish("devices/inv-9/telemetry", b'{"temperature": 41}')

        assert arrived.wait(10)
    finally:
        listener.loop_stop()
        listener.disconnect()
    assert received == [("devices/inv-9/telemetry", b'{"temperature": 41}')]


def test_it_says_so_when_the_broker_is_not_there() -> None:
    publish = publisher(BrokerSettings(host="127.0.0.1", port=free_port()), None)

    with pytest.raises(OSError):
        publish("devices/inv-9/telemetry", b"{}")
