"""ncrt: a NeuronCore runtime for any host. (Plugin author's guide: see below once written.)"""
