"""The match protocol between trained sides: who plays whom (opponent pools, :mod:`retro_gamer.adversarial.pool`)."""
