"""Poisson structures: canonical and Lie-Poisson (so(3)*, se(3)* heavy top, generic J(z))."""
