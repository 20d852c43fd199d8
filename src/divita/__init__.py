"""divita: movie trailer genre classification with DIViTA on Trailers12k."""

from divita.errors import DivitaError
from divita.genres import GENRES, NUM_GENRES

__version__ = "0.1.0"
__all__ = ["DivitaError", "GENRES", "NUM_GENRES", "__version__"]
