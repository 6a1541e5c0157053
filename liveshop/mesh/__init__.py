"""How entities live on Ray: hosts, placement, the directory, entity handles and every Ray
option. Beneath the actors and the Serve apps; above the domain and storage."""
