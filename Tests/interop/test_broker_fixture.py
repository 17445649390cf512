"""Self-test of the interop harness: the private broker answers oslo.messaging and rabbitmqctl."""

import oslo_messaging


def test_oslo_cast_to_random_topic(oslo_transport, unique_topic):
    target = oslo_messaging.Target(topic=unique_topic)
    client = oslo_messaging.get_rpc_client(oslo_transport, target)
    # Nobody listens: the cast is published to the exchange and dropped, and must not raise.
    client.cast({}, "ping", payload="hello")


def test_broker_ctl_lists_queues(broker_ctl):
    result = broker_ctl("list_queues", "name", "messages", "--quiet")
    assert result.returncode == 0


def test_urls(amqp_url, rabbit_url):
    assert amqp_url.startswith("amqp://guest:guest@127.0.0.1:")
    assert rabbit_url == "rabbit://" + amqp_url[len("amqp://"):]
