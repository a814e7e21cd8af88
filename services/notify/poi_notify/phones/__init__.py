"""Phone numbers: parsing what residents type, naming a number by its hash, showing it masked."""
