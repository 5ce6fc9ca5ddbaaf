"""edgerank: distill, quantize and run BERT product rankers on kiosks, phones and small GPU boxes."""

__version__ = "0.1.0"
