"""CPU schedule templates (x86 AVX2/AVX-512; ARM NEON reuses them with its own lane count)."""
