"""Search strategies behind one small interface (see :mod:`chameleon.search.registry`)."""
