"""Pipeline stages (one module per stage) and the libraries they share."""
