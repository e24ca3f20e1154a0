{"signatures":[{"keyid":"74b982f892b7209c","sig":"YMBolaEg7FFG1LNUiOrmCPrdmYCfqOZbx92RfzxH4EDODSlZKi0S4+Y9L8CcRHG9QGKYFF6I0HUbnVaNVUssCw=="}]}
