"""`python -m agent.doctor`."""
from agent.doctor.main import main

raise SystemExit(main())
