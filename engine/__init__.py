"""How decisions are made and explained: rulebooks, evaluators, resolution, recommend()."""

from engine.evaluators import Evaluator as Evaluator  # noqa: E402
from engine.evaluators import make_evaluator as make_evaluator  # noqa: E402
from engine.recommend import Recommendation as Recommendation  # noqa: E402
from engine.recommend import recommend as recommend  # noqa: E402
from engine.resolve import Candidate as Candidate  # noqa: E402
from engine.resolve import Decision as Decision  # noqa: E402
from engine.rulebook import RulebookError as RulebookError  # noqa: E402
from engine.rulebook import load_rulebook as load_rulebook  # noqa: E402
