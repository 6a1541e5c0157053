"""Commerce domain: products, inventory, deals, carts and orders. Plain Python, no I/O."""
