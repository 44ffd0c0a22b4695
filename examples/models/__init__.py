"""The bundled example models; the CNN ships inside ecgaudit as `builtin:cnn`, the default transfer surrogate."""
