"""The web pages and their static files (served by liveshop.serve.web)."""
