"""The 10 Trailers12k genres, in the column order of mtgc.csv."""

GENRES: tuple[str, ...] = (
    "action",
    "adventure",
    "comedy",
    "crime",
    "drama",
    "fantasy",
    "horror",
    "romance",
    "sci-fi",
    "thriller",
)
NUM_GENRES = len(GENRES)
