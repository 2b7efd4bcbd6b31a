"""intab: a small language model whose whole decoding stack is Python, running in a browser tab."""
