"""Simulated Windows lab: a WSMan/PSRP endpoint on loopback that the real pypsrp client talks to."""
