"""The wizard: the one view that serves every step of every guide (the step contract they follow
is app/steps.py), its forms, the sidebar and the run panel."""
