"""Ray Serve applications: the HTTP API and the WebSocket gateway deployment."""
