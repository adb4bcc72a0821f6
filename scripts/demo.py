"""`make demo`: the whole pipeline end to end on the data shipped in the repository."""

from wavtokenizer_hf.demo import main

if __name__ == "__main__":
    main()
