"""Scale-out: a folder of files on a pool of processes (folder) or Ray actors (ray_actors), one file's work shared by both (files)."""
