"""Side-by-side comparison of search strategies (online on hardware, or offline in simulation)."""
