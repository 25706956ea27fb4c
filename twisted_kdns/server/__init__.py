"""The DNS server core: wire codec, dispatcher and the UDP/TCP listeners."""
