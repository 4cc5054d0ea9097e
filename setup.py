"""The one compiled part: an optional libjpeg-turbo window decoder (engine/data/jpegcrop.py).

Everything else is declared in pyproject.toml. Where libjpeg's headers or a C compiler are missing the
build skips it (optional=True) and the input pipeline decodes whole images, as before.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "engine.data._jpegcrop",
            sources=["engine/data/_jpegcrop.c"],
            libraries=["jpeg"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
