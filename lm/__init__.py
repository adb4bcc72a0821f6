"""Language models on WavTokenizer token streams: a joint text + audio vocabulary (`vocabulary`), utterance streams,
splits and packing (`streams`), training (`models`, `trainer`, `experiment`), scoring (`evaluate`, `ngram`),
sampling, the audio-only GPT (`audio_lm`), the TTS-LM (`tts_sequences`, `tts_training`, `tts_generation`) and the
alignment probes (`probes`). `tts`, `tts_format` and `tts_lm` are deprecated names of `tts_generation`,
`tts_sequences` and `tts_training`, kept so that old imports work.
"""
