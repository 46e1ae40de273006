"""Pure rules of the product: standard library only, no I/O, time passed in as an argument."""
