"""The TCP machine (RFC 9293), split as the RFCs split it."""
