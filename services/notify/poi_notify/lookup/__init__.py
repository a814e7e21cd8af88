"""SMS lookup: a place and a service word in, the nearest open points out."""
