"""Everything that talks to TVM's Relax pipeline, builder and runner lives here."""
