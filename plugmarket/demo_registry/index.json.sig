{"signatures":[{"keyid":"74b982f892b7209c","sig":"VFPhyK4Rab97zT6CkMqfXaUTuFdZCQds8vQHGLsoXMAr2e6vOarKSiLHSsZ9Bc7D2Ez4rq8osvXwwoaOC5dfCw=="}]}
