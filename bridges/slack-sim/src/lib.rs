//! A stateful, protocol-faithful Slack server for tests and demos (being written).
