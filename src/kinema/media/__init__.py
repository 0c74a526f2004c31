"""Media layer: encode generated frames to MP4 and previews, and safely decode user uploads.

Modules (import them directly; this package imports nothing heavy on its own):

- :mod:`kinema.media.errors` -- :class:`MediaError`, the one exception shown to users.
- :mod:`kinema.media.encode` -- frames to H.264 MP4.
- :mod:`kinema.media.previews` -- WebP thumbnail and JPEG spritesheet.
- :mod:`kinema.media.images` -- bounded decoding of uploaded images.
- :mod:`kinema.media.video_decode` -- bounded decoding of uploaded videos, and of our own MP4s.
"""
