"""The NATS JetStream bridge: `tessera nats push` sends this node's events to a stream through an
outbox that advances on the server's ack; `tessera nats pull` mirrors other members' events into
their own verified chains (DESIGN §8, docs/nats.md). The tables are core/nats_schema.py's."""
