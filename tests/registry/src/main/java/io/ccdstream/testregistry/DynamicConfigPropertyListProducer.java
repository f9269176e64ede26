package io.ccdstream.testregistry;

import io.apicurio.common.apps.config.DynamicConfigPropertyList;
import java.util.List;
import javax.enterprise.context.ApplicationScoped;
import javax.enterprise.inject.Produces;

/**
 * Stands in for apicurio-common-app-components-config-index, whose Quarkus deployment artifact
 * is not on Maven Central: that extension lists the registry's dynamic (runtime-editable) config
 * properties at build time. An empty list only means none of them can be changed through the
 * admin API, which the ccd-stream tests never do.
 */
@ApplicationScoped
public class DynamicConfigPropertyListProducer {
    @Produces
    @ApplicationScoped
    DynamicConfigPropertyList dynamicConfigProperties() {
        return new DynamicConfigPropertyList(List.of());
    }
}
