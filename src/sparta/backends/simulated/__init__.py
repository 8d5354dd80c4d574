"""The simulated tribe (``backend.kind: simulated``): latent skills, judges of known reliability, no model.

tribe   the model and the :class:`~sparta.backends.base.Tribe` it plays
judges  honest and unreliable judge kinds (noisy, inverted, biased, colluding)
draws   stable hashed random draws
"""

from sparta.backends.simulated.tribe import (
    FAILURE_RAW,
    FAILURE_REASON,
    STATE_FILE,
    SimulatedTribe,
    build,
    initial_skills,
)

__all__ = ["FAILURE_RAW", "FAILURE_REASON", "STATE_FILE", "SimulatedTribe", "build", "initial_skills"]
