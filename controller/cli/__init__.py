"""The commands an admin runs at the centre (``muster controller ...``, ``muster provision ...``):
thin click layers over the other rooms, which never import them."""
