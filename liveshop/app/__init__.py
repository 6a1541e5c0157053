"""Application services: what HTTP and WebSocket share, and what entities use of each
other's flows: commerce (buys, carts, checkout, auctions, orders), the one table of
operations, programming (channels, shows, cues). Above the entity layer (liveshop/mesh),
beneath the actors and the Serve apps."""
