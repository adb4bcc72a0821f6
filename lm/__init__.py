"""Language models on WavTokenizer token streams (token LMs, TTS-LM, alignment probes)."""
