"""PostgreSQL (asyncpg) and Redis: pools, migrations, stores, the broker, embedded servers."""
