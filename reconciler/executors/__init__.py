"""Run backends behind one interface (docker, swarm, memory)."""
